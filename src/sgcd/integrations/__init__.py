"""SGCD inside existing engines (TRL, verl): the same sgcd.core math, no second copy."""
