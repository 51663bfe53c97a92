import os

import pytest
import torch

# Under pytest-xdist (the fast set runs one worker per core) each worker keeps to its share of the cores, so that
# torch's threads in one worker do not wait on another worker's.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory, monkeypatch):
    """Keep the MNIST-1D cache in one temp folder per session and run each test in a fresh working dir."""
    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _sigint_state_kept(request):
    """Each test starts with the process's SIGINT handler and signal mask as the one before left them: a test (or a
    library it drives) that leaves SIGINT ignored, blocked or handled elsewhere would otherwise decide the outcome of
    the signal tests that happen to run after it in the same worker. Such a leak is undone and reported as a
    warning naming the test."""
    import signal
    import threading
    import warnings

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    handler, mask = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    now_handler, now_mask = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if now_handler is not handler or now_mask != mask:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        warnings.warn(f"{request.node.nodeid} left SIGINT changed (handler {now_handler!r}, blocked "
                      f"{sorted(now_mask)}); restored", stacklevel=1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """``get(name)``: a lab experiment's quick-size result, run once per test module and checked to be plain data
    (it survives a JSON round trip unchanged)."""
    import json

    from trainwell.lab import registry

    cache = {}

    def get(name):
        if name not in cache:
            mod = registry.experiments()[name]
            result = mod.run(mod.Config.quick(), workdir=tmp_path_factory.mktemp(name))
            cache[name] = json.loads(json.dumps(result))
            assert cache[name] == result
        return cache[name]

    return get


os.environ.setdefault("MPLBACKEND", "Agg")
