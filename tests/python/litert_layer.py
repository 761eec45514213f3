"""Runs a one-operator TFLite model (as `tinyscore_host::tflite` writes it) in LiteRT.

usage: litert_layer.py MODEL.tflite INPUTS.bin OUTPUTS.bin reference|optimized

INPUTS.bin holds rows of the model's input width and type (int8, or float32 little-endian),
a whole number of its batches; the outputs are written the same way in the output's type. `reference` runs TFLite's reference kernels
(OpResolverType.BUILTIN_REF), `optimized` its optimized kernels without the default XNNPACK
delegate (BUILTIN_WITHOUT_DEFAULT_DELEGATES).
"""

import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

model, inputs_path, outputs_path, kernels = sys.argv[1:5]
resolver = {
    "reference": OpResolverType.BUILTIN_REF,
    "optimized": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
}[kernels]
interpreter = Interpreter(model_path=model, experimental_op_resolver_type=resolver)
interpreter.allocate_tensors()
source = interpreter.get_input_details()[0]
sink = interpreter.get_output_details()[0]
batch, width = source["shape"]
rows = np.fromfile(inputs_path, dtype=source["dtype"]).reshape(-1, width)
outputs = []
for start in range(0, len(rows), batch):
    interpreter.set_tensor(source["index"], rows[start : start + batch])
    interpreter.invoke()
    outputs.append(interpreter.get_tensor(sink["index"]).copy())
np.concatenate(outputs).astype(sink["dtype"]).tofile(outputs_path)
