"""clearcube.deploy: Dask cluster definitions and the local-cluster helpers.

The definitions live in docker/, kubernetes/, gateway/, slurm/ and dask/; the helpers the
pipeline uses are in :mod:`clearcube.deploy.local`.
"""
