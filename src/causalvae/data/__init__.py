"""dSprites: factor specification, loader, renderer, oracle and resampling."""
