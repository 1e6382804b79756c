"""Cost of compiling one train step (`train.jit_compile` on torch): make_fx time, ATen graph size, first and
second call. GDFR_TORCH_COMPILER=eager (the default here) stops after dynamo; =inductor compiles too
(TORCHINDUCTOR_CACHE_DIR picks a cold or warm cache). One JSON line.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/compile_cost.py gdfrnet 128 float32
"""
import os, sys, time, json
os.environ["KERAS_BACKEND"] = "torch"
os.environ.setdefault("GDFR_TORCH_COMPILER", "eager")
import torch, keras, numpy as np
torch.set_num_threads(1)
from keras_gdfr.models import GDFRNet
from keras_gdfr.training import torch_compile
from keras_gdfr.training.optimizer import TorchSGD, compile_for_training

variant, batch, precision = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keras.config.set_image_data_format("channels_first")
keras.mixed_precision.set_global_policy(precision)
keras.utils.set_random_seed(0)
model = GDFRNet(variant, input_shape=(3, 32, 32), num_classes=10, data_format="channels_first")
compile_for_training(model, TorchSGD(0.1), jit_compile=True)
times = {}
original = torch_compile.CompiledStep._make_fx
def timed(self, *a, **k):
    t = time.perf_counter(); out = original(self, *a, **k); times.setdefault("make_fx_s", []).append(time.perf_counter() - t)
    times["nodes"] = len(out[0].graph.nodes); return out
torch_compile.CompiledStep._make_fx = timed
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, 3, 32, 32)).astype("float32"); y = np.eye(10, dtype="float32")[rng.integers(0, 10, batch)]
t = time.perf_counter(); model.train_on_batch(x, y); times["first_call_s"] = time.perf_counter() - t
t = time.perf_counter(); model.train_on_batch(x, y); times["second_call_s"] = time.perf_counter() - t
times["compiler"] = torch_compile.COMPILER
times.update(variant=variant, batch=batch, precision=precision, load=os.getloadavg(), torch=torch.__version__)
print(json.dumps(times))
