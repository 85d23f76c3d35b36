from gswarm_jupyter.core.ratelimit import RateLimiter


class Clock:
    def __init__(self, t: float = 1_000_040.0) -> None:  # 20 s into a minute window
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_burst_beyond_the_per_second_limit_is_refused_for_a_second():
    clock = Clock()
    limiter = RateLimiter(per_minute=1000, burst=3, clock=clock)
    assert [limiter.hit("ann").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.hit("ann")
    assert refused.retry_after == 1 and refused.headers()["Retry-After"] == "1"
    clock.t += 1
    assert limiter.hit("ann").allowed


def test_per_minute_limit_holds_until_the_window_rolls_over():
    clock = Clock()
    limiter = RateLimiter(per_minute=5, burst=100, clock=clock)
    decisions = [limiter.hit("ann") for _ in range(5)]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = limiter.hit("ann")
    assert not refused.allowed
    assert refused.retry_after == 40  # the window started 20 s ago
    assert refused.reset == 1_000_040 - 20 + 60
    clock.t += 40
    assert limiter.hit("ann").allowed


def test_identities_are_counted_apart():
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock())
    assert limiter.hit("ann").allowed
    assert not limiter.hit("ann").allowed
    assert limiter.hit("bob").allowed


def test_zero_disables():
    limiter = RateLimiter(0, 0, clock=Clock())
    assert not limiter.enabled
    assert all(limiter.hit("ann").allowed for _ in range(10_000))


def test_headers_name_the_limit_remaining_and_reset():
    d = RateLimiter(10, 5, clock=Clock()).hit("ann")
    assert d.headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "9",
        "X-RateLimit-Reset": str(1_000_040 - 20 + 60),
    }
