// waypost/k8s: mirror one Kubernetes service's EndpointSlices into a
// waypost Registry, by list + watch over the API server's HTTP API with the
// built-in fetch. The core decides (the paths, merging the slices, when to
// list again after a 410 answer or an ERROR event); the mirror sends what
// `sourceRequest` names, feeds the list, then each line of the watch.
//
// Inside a pod everything has a default: the API server from
// KUBERNETES_SERVICE_HOST/PORT, and the token, CA and namespace from
// /var/run/secrets/kubernetes.io/serviceaccount (the token file is read
// again on every request: the kubelet rotates it).
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { MirrorLoop, Server, StoreError } from "./store-http.js";

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A failed call to the API server (`endpoint`, `path`, `status`). */
export class KubernetesError extends StoreError {
  constructor(message, extra = {}) { super(message, { ...extra, name: "KubernetesError" }); }
}

function read(path, what) {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new KubernetesError(`kubernetes: cannot read the ${what} at ${path}: ${e.code ?? e.message}`, { cause: e });
  }
}

/** `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`. */
export function inClusterApiServer() {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new KubernetesError("kubernetes: no apiServer given and KUBERNETES_SERVICE_HOST/PORT are not set (not running in a pod?)");
  return `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Keeps `registry` equal to the endpoints of `service` in `namespace` on
 * the port named `port` ("" = each slice's first), as the instances of
 * source `source` (default "k8s"). `await start()` resolves once listed;
 * events "change", "error", "synced"; `close()` or `signal` stops it.
 */
export class K8sMirror extends MirrorLoop {
  constructor({ apiServer, registry, namespace, service, port = "", token, caFile, source = "k8s",
    serviceAccountDir = SERVICE_ACCOUNT_DIR, now, timeoutMs = 5000, signal, onError, onChange } = {}) {
    if (typeof service !== "string" || service === "") throw new TypeError("service: the Kubernetes service name");
    const base = apiServer ?? inClusterApiServer();
    const ns = namespace ?? read(join(serviceAccountDir, "namespace"), "namespace");
    let headers;
    if (token !== undefined) {
      const fixed = token ? { authorization: `Bearer ${token}` } : {};
      headers = () => fixed;
    } else {
      const tokenFile = join(serviceAccountDir, "token");
      const useFile = existsSync(tokenFile);
      headers = () => (useFile ? { authorization: `Bearer ${read(tokenFile, "token")}` } : {});
    }
    let ca;
    const caPath = caFile ?? (base.startsWith("https:") && existsSync(join(serviceAccountDir, "ca.crt")) ? join(serviceAccountDir, "ca.crt") : undefined);
    if (caPath !== undefined) ca = read(caPath, "CA file");
    const s = new Server(base, { defaultPort: 443, headers, ca, timeoutMs, what: "kubernetes", errorName: "KubernetesError" });
    s.error = (message, extra = {}) => new KubernetesError(message, { endpoint: s.url, ...extra });
    super(s, { registry, source, options: { kind: "k8s", namespace: ns, service, port }, now, signal, onError, onChange });
    this.namespace = ns;
    this.service = service;
    this.port = port;
    this.lists = 0;
  }

  /** Where the next watch starts (null: the next request lists). */
  get resourceVersion() {
    const m = /&resourceVersion=([^&]*)/.exec(this.registry.sourceRequest(this.source).path);
    return m === null ? null : decodeURIComponent(m[1]);
  }

  fail(path, answer, cause) {
    return new KubernetesError(`kubernetes ${this.endpoint}: ${path} answered HTTP ${answer.status}: ${answer.text.slice(0, 300).trim()}`,
      { endpoint: this.endpoint, path, status: answer.status, cause });
  }

  async step(signal) {
    const req = this.registry.sourceRequest(this.source);
    if (!req.stream) this.lists += 1;
    const answer = await this.server.request(req.method, req.path, { stream: req.stream, signal });
    if (signal.aborted) {
      answer.stream?.close();
      return;
    }
    if (answer.stream === undefined) {
      let report;
      try {
        report = this.feed(answer.bytes, answer.status);
      } catch (e) {
        throw answer.status === 200 ? e : this.fail(req.path, answer, e);
      }
      // A 410 answer to a watch resets the core: the next request lists.
      if (req.stream && answer.status !== 200) return;
      if (!report.resync) this.ok();
      return;
    }
    // Ended by the server: watch again from where it stood; an ERROR event
    // (410) in it makes the core list again.
    return this.watch(answer.stream, (detail, cause) => new KubernetesError(`kubernetes ${this.endpoint}: ${detail}`,
      { endpoint: this.endpoint, path: req.path, cause }));
  }
}
