r"""Treatment effects with hidden confounders, using Pyro's CEVAE.

The confounder of a binary treatment and an outcome is seen only through noisy
proxies (the covariates). CEVAE (Louizos et al., 2017) infers a latent confounder
from them and estimates, for each unit,

.. math::

    \mathrm{ITE}(x) = \mathbb{E}[y \mid x, do(t=1)] - \mathbb{E}[y \mid x, do(t=0)].

Entry points:

* :func:`fit_effects`: validate a table, train CEVAE with early stopping, and
  return ITEs and the ATE with a bootstrap interval.
* :func:`write_effect_outputs`: per-unit CSV, JSON summary and ITE histogram.
* :func:`run_ihdp_benchmark`: the IHDP benchmark with baselines.
* :func:`run_dsprites_benchmark`: a semi-synthetic benchmark with images as proxies.
"""

from causalvae.effects.errors import EffectsInputError, TrainingDivergedError
from causalvae.effects.fit import EffectFit, fit_effects
from causalvae.effects.ihdp_benchmark import (
    IHDP_CONFIG,
    IhdpBenchmarkResult,
    run_ihdp_benchmark,
)
from causalvae.effects.images import (
    DSPRITES_CONFIG,
    DspritesBenchmarkResult,
    run_dsprites_benchmark,
)
from causalvae.effects.metrics import ate_error, mean_and_standard_error, sqrt_pehe
from causalvae.effects.model import CevaeConfig, FittedCevae, fit_cevae_arrays
from causalvae.effects.outputs import EffectOutputs, write_effect_outputs
from causalvae.effects.training import TrainingHistory, TrainingSettings
from causalvae.effects.validation import (
    EffectData,
    OutcomeFamily,
    read_table,
    validate_effect_data,
)

__all__ = [
    "DSPRITES_CONFIG",
    "IHDP_CONFIG",
    "CevaeConfig",
    "DspritesBenchmarkResult",
    "EffectData",
    "EffectFit",
    "EffectOutputs",
    "EffectsInputError",
    "FittedCevae",
    "IhdpBenchmarkResult",
    "OutcomeFamily",
    "TrainingDivergedError",
    "TrainingHistory",
    "TrainingSettings",
    "ate_error",
    "fit_cevae_arrays",
    "fit_effects",
    "mean_and_standard_error",
    "read_table",
    "run_dsprites_benchmark",
    "run_ihdp_benchmark",
    "sqrt_pehe",
    "validate_effect_data",
    "write_effect_outputs",
]
