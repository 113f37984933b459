"""clearcube.pipeline"""
