"""What the doctor imports only when it is used: ``trainwell.doctor.watch`` (the function however the package was
imported) loads on first use; NumPy's global generator is not imported to be saved."""

import subprocess
import sys

import pytest

CASES = {
    # trainwell fit's path does not load the loop readers
    "fit_path": "import sys, trainwell.doctor.monitors, trainwell.pipeline.write\n"
                "assert 'trainwell.doctor.watch' not in sys.modules",
    "numpy_random": "from trainwell.doctor import global_rngs\nwith global_rngs.kept(): pass\n"
                    "assert 'numpy.random' not in sys.modules",
    "attribute": "from trainwell import doctor\nimport trainwell.doctor.watch as m\n"
                 "assert callable(doctor.watch) and doctor.watch is sys.modules['trainwell.doctor.watch'].watch\n"
                 "assert doctor.Watch is sys.modules['trainwell.doctor.watch'].Watch",
    # the submodule imported first (as a user's `from trainwell.doctor.watch import Watch` does)
    "submodule_first": "from trainwell.doctor.watch import Watch\nfrom trainwell.doctor import watch\n"
                       "import trainwell.doctor as d\n"
                       "assert watch is sys.modules['trainwell.doctor.watch'].watch and d.Watch is Watch",
    "from_import": "from trainwell.doctor import watch, Watch, check\nassert callable(watch) and Watch.__name__ == "
                   "'Watch'",
}


@pytest.mark.slow  # a fresh interpreter each: ~2 s on a 2-core CPU
@pytest.mark.parametrize("code", CASES.values(), ids=CASES.keys())
def test_watch_is_the_function(code):
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_unknown_name_is_an_attribute_error():
    from trainwell import doctor

    with pytest.raises(AttributeError, match="no attribute 'wacth'"):
        doctor.wacth  # noqa: B018
