"""Conditional VAE models: networks, factor mechanisms, Pyro model and guide."""

from causalvae.models.cvae import ConditionalVAE, ModelConfig
from causalvae.models.mechanisms import FactorMechanisms

__all__ = ["ConditionalVAE", "FactorMechanisms", "ModelConfig"]
