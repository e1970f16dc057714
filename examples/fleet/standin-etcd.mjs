// A minimal etcd registrar over etcd's JSON gateway, with the shape of
// waypost's EtcdRegistrar: the fleet uses the package's own when the build
// has it (`waypost/etcd`), this one otherwise. Node's built-in fetch only.
const b64 = (s) => Buffer.from(s).toString("base64");

export class EtcdRegistrar {
  constructor({ endpoints, instance, prefix = "/waypost/services", ttl = 10 }) {
    this.endpoints = endpoints.map((e) => e.replace(/\/$/, ""));
    this.instance = { ...instance };
    this.key = `${prefix}/${instance.service}/${instance.id}`;
    this.ttl = ttl;
    this.leaseId = null;
    this.grantedTtl = null;
    this.error = null;
  }

  async #post(path, body) {
    let last;
    for (const endpoint of this.endpoints) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 2000);
      try {
        const reply = await fetch(endpoint + path, { method: "POST", body: JSON.stringify(body), signal: controller.signal });
        // keepalive is a stream: its first line is the answer
        const reader = reply.body.getReader();
        let text = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString();
          if (text.includes("\n")) break;
        }
        controller.abort();
        return JSON.parse(text.split("\n")[0]);
      } catch (e) {
        last = e;
      } finally {
        clearTimeout(timer);
      }
    }
    throw new Error(`no etcd endpoint answered ${path}: ${last?.message}`);
  }

  async #register() {
    const grant = await this.#post("/v3/lease/grant", { TTL: this.ttl });
    this.leaseId = grant.ID;
    this.grantedTtl = Number(grant.TTL);
    await this.#put();
  }

  #put() {
    return this.#post("/v3/kv/put", { key: b64(this.key), value: b64(JSON.stringify(this.instance)), lease: this.leaseId });
  }

  /** Changes fields of the registered value (e.g. status) and writes it again. */
  async update(fields) {
    Object.assign(this.instance, fields);
    if (this.leaseId) await this.#put();
  }

  async start() {
    await this.#register();
    const period = Math.max(500, (this.grantedTtl * 1000) / 3);
    this.timer = setInterval(async () => {
      try {
        const answer = await this.#post("/v3/lease/keepalive", { ID: this.leaseId });
        if (!(Number(answer.result?.TTL ?? 0) > 0)) await this.#register(); // lease lost
        this.error = null;
      } catch (e) {
        this.error = e; // etcd away: try again next period
      }
    }, period);
  }

  async close() {
    clearInterval(this.timer);
    try {
      if (this.leaseId) await this.#post("/v3/lease/revoke", { ID: this.leaseId });
    } catch {}
  }
}
