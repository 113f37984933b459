"""clearcube.deploy: Dask cluster definitions (docker/, kubernetes/, gateway/, slurm/, dask/) and
the local-cluster helpers the pipeline uses (:mod:`clearcube.deploy.local`)."""
