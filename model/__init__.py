"""clearcube.model"""
