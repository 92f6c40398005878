"""The run presets `sgcd train --preset NAME` loads: NAME.yaml in this folder, shipped inside the package."""
