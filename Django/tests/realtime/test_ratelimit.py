from realtime.ratelimit import TokenBucket


def test_bursts_then_refills_at_the_rate():
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.allow(), bucket.allow()] == [True, False]
    now[0] += 100
    assert sum(bucket.allow() for _ in range(10)) == 3  # never more than the burst
