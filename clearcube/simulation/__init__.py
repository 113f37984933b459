"""Simulated Sentinel-1/2 over simulated farmland: landscape, clouds, backscatter, acquisitions.

Shared by the demo catalog (:mod:`clearcube.catalogs.demo`) and the model's simulated training
data (:mod:`clearcube.model.data.simulated`); it depends on nothing but the root package.
"""
