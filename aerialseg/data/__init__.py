"""Data: from a download (or a generated stand-in) to training patches.

Where the files come from (``sources``: URLs, local archives and folders, the generated set),
how ISPRS names them (``potsdam``), reading members of nested zips in place (``archives``), the
colour palette of the labels (``palette``), boundary-free labels (``boundaries``), the tile list
(``manifest``), the resize and patches stages (``resize``, ``patches``), the split by tile
(``splits``) and the generated Potsdam-like tiles (``synthetic``). Nothing here imports Keras.
"""
