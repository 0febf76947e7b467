"""Point-in-time training-set join: nbfeatures vs Feast 0.67 ``get_historical_features``."""
