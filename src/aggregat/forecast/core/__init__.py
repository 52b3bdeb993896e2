"""The storage-free forecasting core: features, models, the linear member, metrics, calendar,
blending, validation and backtests, as pure functions on frames and arrays.

It imports nothing that reads or writes storage (bank, registry, energy DB, configuration); the
storage-aware steps around it live in :mod:`aggregat.forecast.pipeline`.
"""
