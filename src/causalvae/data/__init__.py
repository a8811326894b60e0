"""dSprites: factor specification, loader, procedural renderer, oracle and resampling."""
