"""The gazecli library: data, models, engine, stages and metrics. Importable without Typer."""
