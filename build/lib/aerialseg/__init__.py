"""aerialseg: a reproducible pipeline that turns large aerial photos into land-cover maps.

TensorFlow's oneDNN kernels are turned on before TensorFlow is imported (unless
TF_ENABLE_ONEDNN_OPTS is set already): on Linux TensorFlow turns them on by itself only for
CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX, and otherwise convolves with Eigen's
kernels, which its wheels compile without AVX2 or FMA. On an AVX2-only CPU (an AMD Zen 3, say)
Eigen trains the U-Net about 2.3 times slower than oneDNN (benchmarks/cpu_settings.py).
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
