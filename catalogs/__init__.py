"""clearcube.catalogs"""
