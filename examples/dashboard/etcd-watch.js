// A browser-side etcd mirror loop over the v3 JSON gateway: read the prefix,
// then watch from the next revision on a streamed fetch, resuming from the
// last revision after a disconnect and reading everything again after a
// compaction. It only moves bytes: what to do with each change is the
// caller's (the dashboard applies it to a waypost Registry).
const enc = new TextEncoder();
const dec = new TextDecoder();

export const b64 = (text) => btoa(String.fromCharCode(...enc.encode(text)));
export const unb64 = (text) => dec.decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));

function prefixEnd(prefix) {
  const bytes = enc.encode(prefix);
  bytes[bytes.length - 1] += 1;
  return btoa(String.fromCharCode(...bytes));
}

const sleep = (ms, signal) => new Promise((ok) => {
  const t = setTimeout(ok, ms);
  signal?.addEventListener("abort", () => { clearTimeout(t); ok(); }, { once: true });
});

export class EtcdWatch {
  /**
   * @param {{endpoints: string[], prefix?: string,
   *          onSync: (kvs: {key: string, value: string, lease: string}[], revision: number) => void,
   *          onEvents: (events: {type: "PUT"|"DELETE", key: string, value?: string, lease?: string}[], revision: number) => void,
   *          onStatus?: (status: string, error?: Error) => void}} options
   */
  constructor({ endpoints, prefix = "/waypost/services", onSync, onEvents, onStatus = () => {} }) {
    this.endpoints = endpoints.map((e) => e.replace(/\/$/, ""));
    this.current = 0;
    this.prefix = prefix.replace(/\/$/, "") + "/";
    this.revision = 0;
    this.onSync = onSync;
    this.onEvents = onEvents;
    this.onStatus = onStatus;
    this.abort = new AbortController();
  }

  get endpoint() { return this.endpoints[this.current % this.endpoints.length]; }

  async post(path, body, signal) {
    const reply = await fetch(this.endpoint + path, { method: "POST", body: JSON.stringify(body), signal });
    if (!reply.ok) throw new Error(`etcd ${this.endpoint}${path} answered ${reply.status}`);
    return reply;
  }

  async resync(signal) {
    const answer = await (await this.post("/v3/kv/range", { key: b64(this.prefix), range_end: prefixEnd(this.prefix) }, signal)).json();
    const kvs = (answer.kvs ?? []).map((kv) => ({ key: unb64(kv.key), value: unb64(kv.value), lease: kv.lease ?? "0" }));
    this.revision = Number(answer.header.revision);
    this.onSync(kvs, this.revision);
  }

  async watch(signal) {
    const reply = await this.post("/v3/watch", {
      create_request: { key: b64(this.prefix), range_end: prefixEnd(this.prefix), start_revision: String(this.revision + 1) },
    }, signal);
    const reader = reply.body.getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("watch stream ended");
      buffered += dec.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        const result = JSON.parse(line).result ?? {};
        if (result.created) this.onStatus("live");
        if (result.canceled || result.compact_revision) {
          this.revision = 0; // compacted: read everything again
          return;
        }
        const events = (result.events ?? []).map((e) => ({
          type: e.type === "DELETE" ? "DELETE" : "PUT",
          key: unb64(e.kv.key),
          value: e.kv.value ? unb64(e.kv.value) : undefined,
          lease: e.kv.lease ?? "0",
          revision: Number(e.kv.mod_revision),
        }));
        if (events.length) {
          this.revision = Math.max(this.revision, ...events.map((e) => e.revision));
          this.onEvents(events, this.revision);
        }
      }
    }
  }

  async run() {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        if (this.revision === 0) await this.resync(signal);
        await this.watch(signal);
      } catch (e) {
        if (signal.aborted) return;
        this.onStatus("reconnecting", e);
        this.current += 1; // the next endpoint, if there are several
        await sleep(500, signal);
      }
    }
  }

  /** Lease time left (s) for a key's lease, or null. */
  async timeToLive(lease) {
    const answer = await (await this.post("/v3/lease/timetolive", { ID: lease })).json();
    const ttl = Number(answer.TTL ?? -1);
    return ttl >= 0 ? ttl : null;
  }

  close() { this.abort.abort(); }
}
