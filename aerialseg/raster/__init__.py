"""Raster files: pictures read and written, georeferencing, and windowed streaming.

``pictures`` reads and writes whole tile pictures (photos, labels, maps), ``georef`` keeps
where a picture lies on the ground (world files and GeoTIFF tags, scaled on resize),
``streaming`` reads any GDAL raster by bands of rows and writes Cloud-Optimized GeoTIFFs.
"""
