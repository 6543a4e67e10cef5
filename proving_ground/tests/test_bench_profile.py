"""Where `make bench-profile` puts each sample: checked on recorded py-spy output, so the
attribution is proven exactly; the smoke run (test_bench.py) proves only what its few
samples make certain."""

from pathlib import Path

from proving_ground.experiments.bench_profile import UNREADABLE, Profile, is_known, owner_of, parse

RECORDED = Path(__file__).parent / "data" / "py-spy-worker.txt"


def test_each_sample_goes_to_the_package_of_its_innermost_frame():
    profile = parse(RECORDED.read_text())
    assert profile.samples == 113 and profile.workers == [113]
    assert dict(profile.owners) == {
        "uvicorn": 47,
        "asyncio": 31 + 10,
        "channels_redis": 8,
        "Django/core (the stack's)": 5,
        "channels": 2 + 3,
        "<string>": 1,
        "<frozen abc>": 2,
        "threading": 3,
        "Django/gunicorn.conf (the stack's)": 1,
    }
    assert profile.functions["RedisChannelLayer.receive (channels_redis/core.py)"] == 8
    assert profile.functions["Runner.run (asyncio/runners.py)"] == 10


def test_the_stacks_own_code_is_named_by_its_folder_or_module_under_django():
    assert owner_of("realtime/consumers.py") == "Django/realtime (the stack's)"
    assert owner_of("talk/services.py") == "Django/talk (the stack's)"
    assert owner_of("gunicorn.conf.py") == "Django/gunicorn.conf (the stack's)"
    assert owner_of("gunicorn/arbiter.py") == "gunicorn"  # the library, not the config
    assert owner_of("threading.py") == "threading"


def test_a_file_read_as_it_changed_is_put_down_to_nobody():
    # --nonblocking: a string read while the worker changed it (seen in a smoke run).
    assert owner_of("x-forwarded-proto") == UNREADABLE
    assert owner_of("<frozen abc>") == "<frozen abc>"
    assert not is_known(UNREADABLE)


def test_known_owners_are_the_stacks_importable_modules_and_pythons_own_code():
    for owner in ("uvicorn", "channels", "asyncio", "_weakrefset", "Django/talk (the stack's)"):
        assert is_known(owner), owner
    for owner in ("<frozen abc>", "<frozen importlib._bootstrap>", "<string>"):
        assert is_known(owner), owner
    # A frame py-spy could not name, a full path (--full-filenames), a script of nobody's.
    for owner in ("<unknown>", "usr", "no_such_module_here", ""):
        assert not is_known(owner), owner


def test_profiles_added_keep_each_workers_samples():
    first, second = parse("a (uvicorn/x.py:1) 3\n"), parse("b (channels/y.py:2) 4\n")
    total = Profile()
    total.add(first)
    total.add(second)
    assert (total.samples, total.workers) == (7, [3, 4])
    assert total.owners == {"uvicorn": 3, "channels": 4}
