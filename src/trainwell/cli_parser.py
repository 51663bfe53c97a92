"""The ``trainwell`` command line's arguments: every subcommand, its flags and their help, and the argument types
that refuse bad values before any work is done (usage errors are one line and exit 2)."""

from __future__ import annotations

import argparse
import re

EPILOG = """examples:
  trainwell fit                                   train the default MNIST-1D CNN
  trainwell fit configs/mnist1d-mlp.toml --set optim.lr=0.003 --set train.epochs=20
  trainwell fit --set data.name=spirals --set model.kind=mlp --set 'model.hidden=[64,64]'
  trainwell fit --resume runs/run-1a2b3c4d        continue an interrupted run
  trainwell report runs/run-1a2b3c4d              rebuild report.html
  trainwell doctor --set init.scheme=zeros        pre-flight checks (exit 1 on a fail)
  trainwell watch train.py --epochs 5             your own training script, its loop read by the doctor
  trainwell summary configs/digits-cnn.toml       per-layer shapes, params, receptive fields
  trainwell lr-find                               LR range test: plot and a suggested learning rate
  trainwell lab list                              the lecture's claims as experiments
  trainwell lab run --all --quick                 run them all (seconds each) and write runs/lab/index.html
"""


def _config_args(parser: argparse.ArgumentParser) -> None:
    """The CONFIG argument and --set overrides that every config-driven command takes."""
    parser.add_argument("config", nargs="?", help="a TOML config (default: the embedded MNIST-1D CNN)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set optim.lr=0.01 (repeatable)")


READING = ("The report reads from the cause down: its title and status (pass, warn or fail); when a check warned "
           "or failed, the likely cause and what to do about it; a table of the problems, fails first, a cause before "
           "the readings it explains, each with what was measured, what was expected and what to change; then the "
           "checks that passed, by name (--json gives every reading).")


INTEGER = re.compile(r"\s*\+?[0-9]+\s*")
NUMBER = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")


def _positive_int(text: str) -> int:
    value = int(text) if INTEGER.fullmatch(text) else 0  # the text is checked: no exception to catch
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use an integer >= 1")
    return value


def _seed(text: str) -> int:
    value = int(text) if INTEGER.fullmatch(text) else -1  # "-1" does not match: seeds are integers >= 0
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use an integer >= 0")
    return value


def _fraction(text: str) -> float:
    value = float(text) if NUMBER.fullmatch(text) else -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a number in [0, 1)")
    return value


def _dotted_name(text: str) -> str:
    """A Python name or a dotted path of names (``model``, ``trainer.model``), as ``watch --model`` takes."""
    if not all(part.isidentifier() for part in text.split(".")):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use the name of a variable of the script "
                                         "(model) or a dotted path from one (trainer.model)")
    return text


class _Formatter(argparse.HelpFormatter):
    """argparse's wrapping of the description, paragraph by paragraph; an epilog of examples is kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return "\n\n".join(super(_Formatter, self)._fill_text(part, width, indent) for part in text.split("\n\n"))


def _examples(*rows: tuple[str, str]) -> str:
    """A command's epilog: each example command with what it does beside it (below it when the command is long)."""
    lines = ["examples:"]
    for command, what in rows:
        lines.append(f"  {command:<48} {what}" if len(command) < 48 else f"  {command}\n  {'':<48} {what}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line and exit 2, like every other usage error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainwell", description="Train neural networks well: the lecture's practices, runnable.",
                     epilog=EPILOG)
    from trainwell import __version__

    parser.add_argument("--version", action="version", version=f"trainwell {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    fit = sub.add_parser("fit", help="train a model from a config (default: the MNIST-1D CNN) and write a run dir",
                         description="Train the model a config describes and write a run directory with config.toml, "
                                     "metrics.jsonl, summary.json, checkpoints, figures and report.html. Exit 0 "
                                     "when training ended well, 1 when it failed (non-finite or diverged loss), 2 "
                                     "for a usage, config or data error; Ctrl-C saves the epoch and exits 130.",
                         epilog=_examples(
                             ("trainwell fit", "the default MNIST-1D CNN, 15 epochs, into runs/run-<hash>"),
                             ("trainwell fit configs/mnist1d-mlp.toml --set train.epochs=5",
                              "a config, one key changed"),
                             ("trainwell fit --set model.kind=mlp --set 'model.hidden=[64,64]' --out runs/mlp",
                              "an MLP, into runs/mlp"),
                             ("trainwell fit --resume runs/mlp", "continue it after Ctrl-C or a crash"),
                             ("trainwell fit --json --quiet > summary.json", "summary.json on stdout, for scripts")))
    _config_args(fit)
    fit.add_argument("--out", help="run directory (default: runs/<name>-<config hash>)")
    fit.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    fit.add_argument("--force", action="store_true",
                     help="replace --out if it is an earlier trainwell fit run (never any other folder)")
    fit.add_argument("--json", action="store_true", help="print summary.json to stdout (the table goes to stderr)")
    fit.add_argument("--quiet", action="store_true", help="no progress output")
    fit.add_argument("--figures", action="store_true", help="with report.enabled = false, still draw the first "
                     "layer's weights (the report draws every figure)")
    fit.add_argument("--strict", action="store_true",
                     help="exit 1 when any doctor check fails, not only when training fails (for CI)")

    doc = sub.add_parser("doctor", help="pre-flight checks on a config's model and data; exit 1 on a fail",
                         description="Run the lecture's pre-flight checklist on the model a config builds and a "
                                     "slice of its training data: initial loss, gradient check, regularization, "
                                     "overfitting a tiny subset, symmetry, variance propagation, input-independent "
                                     "baseline, batch independence. Exit 1 if any check fails.\n\n" + READING,
                         epilog="examples:\n"
                                "  trainwell doctor                                 the default MNIST-1D CNN\n"
                                "  trainwell doctor configs/digits-cnn.toml --set init.scheme=zeros\n"
                                "                                                   a zero init: symmetry fails, "
                                "exit 1\n"
                                "  trainwell doctor --json > verdicts.json          every verdict, with its value, "
                                "expectation and advice\n\n"
                                "For your own model and loop: trainwell watch --check train.py (see trainwell watch "
                                "-h), or doctor.check(...) and doctor.watch(...) in Python.")
    _config_args(doc)
    doc.add_argument("--json", action="store_true", help="print the verdicts as JSON")

    wat = sub.add_parser("watch", help="run your own training script unchanged with the doctor watching its loop; "
                                       "exit 1 on a fail",
                         usage="trainwell watch [-h] [--every N] [--json] [--model NAME] [--check] SCRIPT.py "
                               "[ARGS ...]",
                         description="Run a training script of your own, unchanged (no trainwell import, no "
                                     "w.step() calls), with the doctor watching its loop: every step's loss (the "
                                     "tensor backward() started from; the loss curve from the first "
                                     "optimizer.step() on, the rest from the end of it), its labels (the target "
                                     "torch's loss saved), the loss calls of its validations, its gradients, "
                                     "optimizer, rate and modes are read; the verdicts are printed when the script "
                                     "ends (also when it raises). Exit 1 if any check fails; a script that raises "
                                     "or exits with a status gives its own status, also one that exits before "
                                     "training (its -h). The script's own output is printed as it runs; the "
                                     "report follows it, and a last line on stderr says how long the script ran "
                                     "under the watch and why the command exits with its status.\n\n" + READING +
                                     "\n\nOptions before SCRIPT.py are trainwell's; everything "
                                     "after it goes to the script (its own -h, --every, ...).",
                         epilog="examples:\n"
                                "  trainwell watch train.py --epochs 5               the script gets --epochs 5\n"
                                "  trainwell watch --every 10 train.py --every 2     trainwell reads every 10th step "
                                "whole; the script gets --every 2\n"
                                "  trainwell watch --model trainer.model train.py    watch the module the script "
                                "holds as trainer.model\n"
                                "  trainwell watch --check train.py                  also the pre-flight "
                                "(doctor.check) at the first step\n"
                                "  trainwell watch --json train.py > verdicts.json   every verdict of every loop, "
                                "passes included\n\n"
                                "a report's first lines, for a loop that never calls optimizer.zero_grad():\n"
                                "  trainwell watch: train.py: model (step 1 showed which model and optimizer the "
                                "loop trains: read from step 2; its loss curve from step 1): fail\n"
                                "  likely cause: loop: gradients at optimizer.step() (fail): .grad holds earlier "
                                "steps' gradients on 5 of 5 observed steps\n"
                                "    what to do: gradients accumulate across steps: call optimizer.zero_grad() once "
                                "per step")
    wat.add_argument("--every", type=_positive_int, default=50, metavar="N",
                     help="steps between two steps read whole (activations, update ratios); default 50")
    wat.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    wat.add_argument("--model", metavar="NAME", type=_dotted_name,
                     help="the script's variable holding the model to watch: a global of the script (model) or a "
                          "dotted path from one (trainer.model); default: the module that holds the stepping "
                          "optimizers' parameters")
    wat.add_argument("--check", action="store_true",
                     help="also run the pre-flight (doctor.check: gradient check, initial loss, overfit a tiny "
                          "subset, symmetry, structure readings) on a copy of the script's "
                          "model at its first step, on its first batches (256 examples), with the loss rebuilt "
                          "from its graph or replayed from the first step; the training is unchanged; off by "
                          "default: it costs one doctor.check (0.3-2 s on a small model, up to a minute on a large "
                          "one) and a copy of the model")
    wat.add_argument("script", metavar="SCRIPT.py", help="the Python script that trains (run as __main__)")
    script_args = wat.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS",
                                   help="arguments for the script (everything after its name; none is fine)")
    script_args.required = False  # argparse requires a positional REMAINDER: a missing script would name ARGS too

    pr = sub.add_parser("prune", help="lottery-ticket rounds: train, prune by magnitude, reset, retrain",
                        description="Train the config's model, prune --rate of the surviving weights per layer by "
                                    "magnitude (the output layer at half rate), reset the survivors to their "
                                    "initial values (or rewind to step K), and retrain, for --rounds rounds. "
                                    "Writes one run per round, results.csv/json and accuracy_vs_density.png.",
                        epilog=_examples(
                            ("trainwell prune --set model.kind=mlp --rounds 3", "a dense run, then 3 rounds at 20%"),
                            ("trainwell prune configs/mnist1d-mlp.toml --rounds 5 --rewind 0.1 --control reinit",
                             "rewind to 10% of training; a re-initialized control at every density")))
    _config_args(pr)
    pr.add_argument("--rounds", type=_positive_int, default=3, help="pruning rounds after the dense run (default 3)")
    pr.add_argument("--rate", type=_fraction, default=0.2,
                    help="fraction of surviving weights pruned per round, in [0, 1) (default 0.2; the output layer "
                         "half of it)")
    pr.add_argument("--rewind", type=float, default=0, metavar="K",
                    help="reset to the weights at step K (>= 1) or at a fraction K of training (< 1) (default 0: "
                         "theta_0, the initial weights)")
    pr.add_argument("--control", choices=["reinit", "random"],
                    help="also train a control at every density: the ticket re-initialized, or a random mask of the "
                         "same density (default: no control)")
    pr.add_argument("--scope", choices=["layer", "global"], default="layer",
                    help="prune each layer by its own magnitudes (default) or with one threshold for all layers")
    pr.add_argument("--out", help="folder for the rounds (default: runs/<name>-lottery-<hash>)")
    pr.add_argument("--force", action="store_true", help="replace --out if it is an earlier prune run")

    sw = sub.add_parser("sweep", help="train a grid of settings x seeds as one population (vmap) and tabulate",
                        description="Train every combination of --grid values (times --seeds seeds) at once as one "
                                    "population when only seeds, learning rates, weight decays, MLP widths, init "
                                    "settings or label-noise draws differ; otherwise one model after another. Writes "
                                    "results.csv/json, metrics.jsonl (per member and epoch) and summary.json.",
                        epilog=_examples(
                            ("trainwell sweep --set model.kind=mlp --grid optim.lr=0.03,0.01,0.003 --seeds 3",
                             "9 MLPs trained as one population"),
                            ("trainwell sweep --set model.kind=mlp --grid 'model.hidden=[32],[128]' --grid "
                             "init.scheme=he_normal,xavier_normal", "4 members: widths x inits"),
                            ("trainwell sweep --resume SWEEP_DIR", "continue an interrupted sweep exactly")))
    _config_args(sw)
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                    help="values of one config key, e.g. --grid optim.lr=0.1,0.01 --grid 'model.hidden=[32],[64]'")
    sw.add_argument("--seeds", type=int, default=1, help="seeds per combination (train.seed, +1, +2, ...; default 1)")
    sw.add_argument("--sequential", action="store_true", help="train the members one after another")
    sw.add_argument("--out", help="output folder (default: runs/<name>-sweep-<hash>); an existing non-empty one "
                                  "needs --force")
    sw.add_argument("--force", action="store_true", help="replace --out if it is an earlier sweep")
    sw.add_argument("--resume", metavar="SWEEP_DIR", help="continue the interrupted sweep in SWEEP_DIR")
    sw.add_argument("--json", action="store_true", help="print the results as JSON")
    sw.add_argument("--backend", choices=["local", "ray"], default="local",
                    help="where the members train: this process (default) or Ray tasks (pip install 'trainwell[ray]')")
    sw.add_argument("--address", metavar="auto|HOST:PORT",
                    help="with --backend ray: the Ray cluster to use (default: RAY_ADDRESS, else a local instance)")

    lrf = sub.add_parser("lr-find", help="learning-rate range test (Smith 2017): sweep the rate exponentially, "
                                          "plot the loss, suggest a rate",
                         description="Train the config's model for --steps steps while the learning rate grows "
                                     "exponentially from --start to --end (Smith 2017), stop when the loss explodes, "
                                     "and suggest a rate below the loss's minimum (a third of it for the onecycle and "
                                     "cosine schedules, a tenth for a constant rate), checked by the doctor's "
                                     "reading of a short run at that rate. Nothing is changed; use the rate with "
                                     "--set optim.lr=..., or let fit do this with optim.lr = \"find\".",
                         epilog=_examples(
                             ("trainwell lr-find", "the default CNN: lr_find.png and a suggested rate"),
                             ("trainwell lr-find configs/mnist1d-mlp.toml --steps 200 --out mlp_lr.png",
                              "another config, a longer test, another plot"),
                             ("trainwell fit --set optim.lr=find",
                              "the same test before fit, which trains at its rate")))
    _config_args(lrf)
    lrf.add_argument("--steps", type=_positive_int, default=100, help="steps of the sweep, 10 or more (default 100)")
    lrf.add_argument("--start", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    lrf.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    lrf.add_argument("--out", default="lr_find.png", help="plot to write (default: lr_find.png); an existing file "
                                                            "is replaced only if trainwell drew it")
    lrf.add_argument("--force", action="store_true", help="replace --out even if trainwell did not write it")
    lrf.add_argument("--json", action="store_true", help="print the result as JSON")

    rep = sub.add_parser("report", help="(re)build report.html of a fit, sweep or prune directory",
                         description="Rebuild report.html from the files of a run directory written by trainwell "
                                     "fit (finished, running or interrupted), sweep or prune, and print its path.",
                         epilog=_examples(("trainwell report runs/run-1a2b3c4d",
                                           "rebuild runs/run-1a2b3c4d/report.html")))
    rep.add_argument("run_dir", help="a directory written by trainwell fit, sweep or prune")

    summ = sub.add_parser("summary", help="per-layer table: output shape, params with/without sharing, receptive "
                                         "field, mult-adds",
                          description="Build the model a config describes and print, per layer: output shape, "
                                      "neurons, parameters with and without weight sharing, receptive field and "
                                      "mult-adds. A layer whose windows do not tile its input is named in a "
                                      "warning (exit 2 with model.geometry = 'strict').",
                          epilog=_examples(("trainwell summary", "the default MNIST-1D CNN"),
                                           ("trainwell summary --input-shape 3,227,227 --classes 1000",
                                            "the default CNN on 3x227x227 inputs, 1000 classes"),
                                           ("trainwell summary configs/digits-cnn.toml --json", "the rows as JSON")))
    _config_args(summ)
    summ.add_argument("--input-shape", metavar="C,H,W", help="input shape without the batch axis, e.g. 3,227,227 "
                                                             "(default: the dataset's)")
    summ.add_argument("--classes", type=_positive_int, help="number of outputs (default: the dataset's)")
    summ.add_argument("--json", action="store_true", help="print the rows as JSON")

    filt = sub.add_parser("filters", help="draw the classic filters (box, Gaussian, sharpen, derivatives) applied "
                                          "to the sample photo and a digit",
                          epilog=_examples(("trainwell filters", "draw them into filters.png"),
                                           ("trainwell filters --out figures/filters.png", "into an existing folder")))
    filt.add_argument("--out", default="filters.png", help="PNG to write (default: filters.png); an existing file "
                                                            "is replaced only if trainwell drew it")
    filt.add_argument("--force", action="store_true", help="replace --out even if trainwell did not write it")

    sub.add_parser("datasets", help="list the datasets trainwell can load")
    _lab_parser(sub)
    _describe(sub)
    return parser


def _describe(sub) -> None:
    """A command's --help opens with what it does: its one-line help where no longer description was written."""
    for action in sub._choices_actions:
        command = sub.choices[action.dest]
        if not command.description and action.help:
            command.description = action.help[0].upper() + action.help[1:] + "."
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        for inner in nested:
            _describe(inner)


def _lab_parser(sub) -> None:
    lab = sub.add_parser("lab", help="the lecture's claims as experiments with verdicts (list | run)",
                         description="Each lab experiment trains small models through the pipeline, draws figures "
                                     "and states a verdict computed from the numbers: pass, fail or inconclusive "
                                     "(unstable when seeds disagree, error when it crashed).")
    lsub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=_Parser)
    ls = lsub.add_parser("list", help="name, claim, sizes and expected time of every experiment",
                         epilog=_examples(("trainwell lab list", "the table"),
                                          ("trainwell lab list --json", "as JSON")))
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    run = lsub.add_parser("run", help="run experiments and write a results tree with index.html",
                          epilog=_examples(
                              ("trainwell lab run capacity dropout --quick", "two experiments, seconds each"),
                              ("trainwell lab run --all --seeds 3 --out runs/lab", "every one, default size, 3 seeds"),
                              ("trainwell lab run --all --seeds 3 --out runs/lab --resume",
                               "after an interruption: keep the finished ones"),
                              ("trainwell lab run dropout --control", "the claim made false on purpose: never a pass")))
    run.add_argument("names", nargs="*", metavar="NAME", help="experiments to run (see trainwell lab list)")
    run.add_argument("--all", action="store_true", help="run every experiment")
    run.add_argument("--quick", action="store_true", help="the quick size (seconds each; default: the default size, "
                                                          "minutes for some: see trainwell lab list)")
    run.add_argument("--seeds", type=int, default=1, help="run each experiment with N seeds; a verdict that flips "
                                                          "between seeds is 'unstable' (default 1)")
    run.add_argument("--seed", type=_seed, help="first seed, an integer >= 0 (default: each experiment's own, 0)")
    run.add_argument("--out", default="runs/lab", help="results folder (default: runs/lab)")
    run.add_argument("--resume", action="store_true", help="keep experiments already finished in --out")
    run.add_argument("--control", action="store_true",
                     help="run each experiment's control instead: the claim made false on purpose (the component "
                          "under test removed or made equal to the baseline), written to OUT/NAME/control; its "
                          "verdict must be fail or inconclusive, and the command exits 1 if one passes")
    run.add_argument("--json", action="store_true", help="print the summaries as JSON")
    run.add_argument("--backend", choices=["local", "ray"], default="local",
                     help="where the experiments run: this process (default) or one Ray task each "
                          "(pip install 'trainwell[ray]')")
    run.add_argument("--address", metavar="auto|HOST:PORT",
                     help="with --backend ray: the Ray cluster to use (default: RAY_ADDRESS, else a local instance)")
    run.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="run N experiments at a time in worker processes on this machine, longest first, each with "
                          "its share of the cores (default: 1, one after another in this process)")
