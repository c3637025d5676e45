"""The arena: an emulated Kubernetes cluster served over the real Kubernetes API.

Cluster half (this package's top level):

- ``arena.server.ArenaServer(host, port=0, behaviour=None, nodes=3, timing=None)``: the API server and the
  controllers on a background thread; ``start()``/``stop()``/context manager, ``.url``, ``.cluster``,
  ``write_kubeconfig(path)``. ``stratus arena serve`` runs one from the command line.
- ``arena.cluster.Cluster``: store + REST layer + controllers + the ``Behaviour`` (``arena/hooks.py``) the kubelet
  asks. ``cluster.view`` is the ``ClusterView``; ``get/list/create/apply/patch/delete/logs/exec`` work from any
  thread; ``call(fn)``/``call_soon(fn)`` run code on the controller loop.
- ``arena.rest.Rest``: the API verbs (defaults, validation, resourceVersion, dry run, deletion semantics) shared by
  HTTP and in-process callers; ``arena.api.app``: the HTTP face (discovery, OpenAPI, tables, watch, log, exec).
- ``arena.controllers``: deployment, replicaset, statefulset, scheduler, kubelet, endpoints, volumes, namespace,
  garbage collector, node; ``arena.timing.Timing`` holds every compressed delay.
"""
