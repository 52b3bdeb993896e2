"""Météo-France forecasts: catalogue, download, datalake, GRIB decoding and extraction.

``aggregat.weather`` is also the public reader of the bank's weather (``aggregat.weather(env,
start, end)``, see :func:`aggregat.api.weather`): once this package is imported, Python binds the
package to that name, so the package itself forwards calls to the function.
"""

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from aggregat.api import weather

        return weather(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
