"""Data: from a download (or a generated stand-in) to training patches.

The download stage (``sources``: the one choice of layout, the tiles checked into data/raw), what
each layout gives it (``tileset``), HTTP downloads resumed and checked (``fetch``), reading members
of nested zips in place (``archives``); the layouts: ISPRS Potsdam's files found, paired, checked
and stored (``potsdam_tiles``) under the names ISPRS gives them (``potsdam``), ISPRS Vaihingen's
archives (``vaihingen``), and any folder of photo/label ``pairs`` with labels decoded by
``labels`` or burnt from ``polygons``; the colour palette of the labels (``palette``),
boundary-free labels (``boundaries``), the tile list (``manifest``), each tile's metres per pixel
(``resolution``), the resize and patches stages (``resize``, ``patches``), the split by tile
(``splits``), the generated Potsdam-like tiles (``synthetic``) and Vaihingen download
(``synthetic_vaihingen``). Nothing here imports Keras.
"""
