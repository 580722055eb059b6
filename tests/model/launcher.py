"""Start llama-cpp-python's OpenAI-compatible server with mean pooling for embeddings.

Takes exactly the arguments of `python -m llama_cpp.server`. The server never passes
`pooling_type` to `llama_cpp.Llama`, so a decoder-only model such as SmolLM2 gets no pooling and
/v1/embeddings answers one vector per token. Here every Llama the server creates defaults to
LLAMA_POOLING_TYPE_MEAN instead, so /v1/embeddings answers one vector per input. Chat and
completions are unaffected. /v1/embeddings also needs `--embedding true`.

It also sets OMP_WAIT_POLICY=passive (unless set): llama.cpp's OpenMP threads otherwise spin while
waiting, and on a busy 2-core machine 2 spinning threads make generation 3-10x slower and erratic.

Used by script/lib/model_server.sh (model_server_start).
"""

import os

# Read by libgomp when llama_cpp loads libggml, so before the import.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import llama_cpp  # noqa: E402


class MeanPoolingLlama(llama_cpp.Llama):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("pooling_type", llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        super().__init__(*args, **kwargs)


# llama_cpp.server.model looks `llama_cpp.Llama` up when it loads the model, so this is enough.
llama_cpp.Llama = MeanPoolingLlama

import llama_cpp.server.__main__  # noqa: E402  (after the patch on purpose)

if __name__ == "__main__":
    llama_cpp.server.__main__.main()
