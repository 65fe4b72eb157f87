"""fastai served as its docs show: `load_learner(export.pkl)` behind FastAPI + uvicorn, answering
`POST /v1/classify {"texts": [...]}` with `learn.predict` per text, in awd's JSON shape, so one load
generator (examples/serve_load.rs) drives both servers.

usage: fastai_serve.py EXPORT_PKL PORT   (binds 127.0.0.1; prints "listening on http://..." when ready)
"""
import sys, threading, warnings
warnings.simplefilter("ignore")
import torch, uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from fastai.learner import load_learner

torch.set_num_threads(2)
learn = load_learner(sys.argv[1])
classes = [str(c) for c in learn.dls.vocab[1]]
app = FastAPI()
# FastAPI runs sync routes on a thread pool; a fastai Learner is not safe to call from several
# threads at once (fastai issue #2990), so predictions take turns, as deployments do.
lock = threading.Lock()


class Texts(BaseModel):
    texts: list[str]


@app.post("/v1/classify")
def classify(req: Texts):
    out = []
    for t in req.texts:
        with lock, learn.no_bar():
            label, _, probs = learn.predict(t)
        probs = [float(p) for p in probs]
        out.append({"label": str(label), "probability": max(probs),
                    "probabilities": dict(zip(classes, probs))})
    return {"classes": classes, "predictions": out}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


if __name__ == "__main__":
    port = int(sys.argv[2])
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
