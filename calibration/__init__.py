"""Calibration: IRT models fitted from sparse past runs, abilities with error bars."""
