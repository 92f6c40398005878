"""Run reports: credit heatmaps, learning curves, summaries (static HTML + PNG)."""
