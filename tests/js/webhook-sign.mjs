// Signs a webhook body the way its senders do, with their own libraries,
// for t1310-triggers: durin's checks are held to these, not to itself.
//
//   node webhook-sign.mjs github SECRET FILE
//       X-Hub-Signature-256's value (@octokit/webhooks-methods' sign)
//   node webhook-sign.mjs standard SECRET ID TIMESTAMP FILE
//       webhook-signature's value (the standardwebhooks package)
import { readFileSync } from "node:fs";
import { sign } from "@octokit/webhooks-methods";
import { Webhook } from "standardwebhooks";

const [kind, secret, ...rest] = process.argv.slice(2);
if (kind === "github" && rest.length === 1) {
  const body = readFileSync(rest[0], "utf8");
  process.stdout.write((await sign(secret, body)) + "\n");
} else if (kind === "standard" && rest.length === 3) {
  const [id, ts, file] = rest;
  const body = readFileSync(file, "utf8");
  const wh = new Webhook(secret);
  process.stdout.write(wh.sign(id, new Date(Number(ts) * 1000), body) + "\n");
} else {
  process.stderr.write(
    "usage: webhook-sign.mjs github SECRET FILE | standard SECRET ID TS FILE\n");
  process.exit(64);
}
