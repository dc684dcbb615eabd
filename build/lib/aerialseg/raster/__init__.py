"""Raster files: pictures read and written, georeferencing, and windowed streaming.

``pictures`` reads and writes whole tile pictures (photos, labels, maps), ``georef`` keeps
where a picture lies on the ground (a CRS and transform from GeoTIFF tags or a world file, scaled on resize),
``streaming`` reads any GDAL raster by bands of rows and writes Cloud-Optimized GeoTIFFs.
"""
