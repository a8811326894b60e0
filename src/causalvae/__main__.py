"""``python -m causalvae``: the command-line interface."""

from causalvae.cli import main

main()
