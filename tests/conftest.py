import os
import signal

import pytest
import torch

# Under pytest-xdist (the fast set runs one worker per core) each worker keeps to its share of the cores, so that
# torch's threads in one worker do not wait on another worker's.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


# The signal tests send SIGINT on purpose, to this process and to the children it starts (which inherit an ignored
# signal). A test run started as a background job of a non-interactive shell begins with SIGINT ignored, and Python
# then installs no KeyboardInterrupt handler: give the tests the handler an interactive Python has.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory, monkeypatch):
    """Keep the MNIST-1D cache in one temp folder per session and run each test in a fresh working dir."""
    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _sigint_state_kept(request):
    """Each test starts with SIGINT handled as in an interactive Python (``KeyboardInterrupt``, not ignored, not
    blocked), whatever the runner inherited or an import changed: the signal tests would otherwise hang or pass
    vacuously. A test that leaves SIGINT changed has it undone and is named in a warning."""
    import threading
    import warnings

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
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
