"""aerialseg: a reproducible pipeline that turns large aerial photos into land-cover maps."""
