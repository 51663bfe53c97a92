"""The lab: each lecture claim as an experiment that returns data, draws figures and states a verdict that can fail.

See :mod:`trainwell.lab.base` for what an experiment is, :mod:`trainwell.lab.registry` for the list, and
:mod:`trainwell.lab.runner` for ``trainwell lab run``.
"""
