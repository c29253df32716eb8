"""Serving: TF Serving's REST and gRPC formats on loopback, versioned exports, TFLite.

codec (the REST JSON format), signatures (SavedModel signatures on request values), versions (the version layout,
its export and lookup), http (the REST server), client (`predict`), grpc (the gRPC server: `kitlib.serving.grpc`,
imported on its own as it loads TensorFlow), lite (TFLite conversion and running).
"""

from kitlib.serving.client import PredictError, RequestRefused, ServerFailure, ServerUnreachable, predict
from kitlib.serving.codec import BadRequest, b64
from kitlib.serving.http import Limits, ModelServer, WorkerError
from kitlib.serving.signatures import SignaturePredictor
from kitlib.serving.versions import NotFound, VersionedModel, export_version

__all__ = ["BadRequest", "Limits", "ModelServer", "NotFound", "PredictError", "RequestRefused", "ServerFailure",
           "ServerUnreachable", "SignaturePredictor", "VersionedModel", "WorkerError", "b64", "export_version",
           "predict"]
