// Writes requests signed by the providers' official SDKs, so hookq is checked against the providers'
// own code rather than against our reading of their docs.
//
//   node tests/sdk/make-vectors.mjs <out.json>
//
// Each item: {name, sdk, scheme, secret, headers: {name: value} (as sent on the wire), body_b64,
// url, timestamp (the "now" to verify at), expect (a hookq Verdict name)}. Timestamps are the real
// current time so the integration tests can replay the items against nginx's clock. Every positive
// item is also checked with the SDK's own verifier where it has one, so a vector can't be wrong.
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";

// Imports resolve from this file's folder (tests/sdk/node_modules), whatever the working directory.
import { sign as octokitSign, verify as octokitVerify } from "@octokit/webhooks-methods";
import { Webhook as StandardWebhook } from "standardwebhooks";
import Stripe from "stripe";
import { Webhook as SvixWebhook } from "svix";

const twilio = createRequire(import.meta.url)("twilio");

const out = process.argv[2];
if (!out) {
    console.error("usage: make-vectors.mjs <out.json>");
    process.exit(2);
}

const now = Math.floor(Date.now() / 1000);
const items = [];
const b64 = (buf) => Buffer.from(buf).toString("base64");
const utf8 = (s) => Buffer.from(s, "utf8");
function check(cond, what) {
    if (!cond) throw new Error(`SDK self-check failed: ${what}`);
}

// Bodies. NUL and non-ASCII are valid UTF-8 and go through every SDK; bytes that are not UTF-8 only
// through Twilio's body hash, the one SDK entry point that takes a Buffer as raw bytes.
const bodies = {
    json: '{"id":"evt_1","type":"ping","data":{"text":"caf\u00e9 \u2713 \u65e5\u672c"}}',
    nul: 'before\u0000after {"a":1}\u0000',
    empty_object: "{}",
};
const large = '{"blob":"' + "x".repeat(256 * 1024 - 12) + '"}';
const notUtf8 = Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80, 0x7d]);

function add(item) {
    items.push({ url: "", expect: "ok", ...item, timestamp: item.timestamp ?? now });
}

// Negative items from a positive one: what an attacker or a misconfiguration produces.
function negatives(item, sigHeader, garbage) {
    const body = Buffer.from(item.body_b64, "base64");
    const tampered = Buffer.concat([body, Buffer.from(" ")]);
    add({ ...item, name: item.name + "/tampered_body", body_b64: b64(tampered), expect: "bad_signature" });
    add({ ...item, name: item.name + "/wrong_secret", secret: item.wrong_secret, expect: "bad_signature" });
    const missing = { ...item.headers };
    delete missing[sigHeader];
    add({ ...item, name: item.name + "/missing", headers: missing, expect: "missing_signature" });
    add({
        ...item,
        name: item.name + "/garbage",
        headers: { ...item.headers, [sigHeader]: garbage },
        expect: "malformed_signature",
    });
}

function finish() {
    for (const it of items) delete it.wrong_secret;
}

// --- GitHub (@octokit/webhooks-methods) ---
{
    const secret = "It's a Secret to Everybody";
    for (const [label, body] of [...Object.entries(bodies), ["256k", large]]) {
        const sig = await octokitSign(secret, body);
        check(await octokitVerify(secret, body, sig), "github " + label);
        const item = {
            name: "github/" + label,
            sdk: "@octokit/webhooks-methods sign",
            scheme: "github",
            secret,
            wrong_secret: "It's not the secret",
            headers: {
                "Content-Type": "application/json",
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": randomUUID(),
                "X-Hub-Signature-256": sig,
            },
            body_b64: b64(utf8(body)),
        };
        add(item);
        if (label === "json") negatives(item, "X-Hub-Signature-256", "sha256=zz" + "0".repeat(62));
    }
}

// --- Stripe (stripe.webhooks.generateTestHeaderString) ---
{
    const stripe = new Stripe("sk_test_hookq");
    const secret = "whsec_hookqTestSecret0123456789abcdef";
    const wrong = "whsec_someoneElse0123456789abcdef0000";
    const header = (payload, timestamp, s = secret) =>
        stripe.webhooks.generateTestHeaderString({ payload, secret: s, timestamp });
    const base = (label, body, headers, extra = {}) => ({
        name: "stripe/" + label,
        sdk: "stripe webhooks.generateTestHeaderString",
        scheme: "stripe",
        secret,
        wrong_secret: wrong,
        headers: { "Content-Type": "application/json; charset=utf-8", ...headers },
        body_b64: b64(utf8(body)),
        ...extra,
    });
    for (const [label, body] of Object.entries(bodies)) {
        const sig = header(body, now);
        check(stripe.webhooks.signature.verifyHeader(body, sig, secret, 300, undefined, now * 1000),
              "stripe " + label);
        const item = base(label, body, { "Stripe-Signature": sig });
        add(item);
        if (label === "json") negatives(item, "Stripe-Signature", `t=${now},v1=nothex`);
    }
    // Stripe rolls secrets by sending one v1 per active secret, plus v0 and future schemes.
    const body = bodies.json;
    const good = header(body, now).split(",v1=")[1];
    const other = header(body, now, wrong).split(",v1=")[1];
    const multi = `t=${now},v1=${other},v1=${good},v0=${other},v2=abc`;
    check(stripe.webhooks.signature.verifyHeader(body, multi, secret, 300, undefined, now * 1000),
          "stripe multi");
    add(base("multi_v1", body, { "Stripe-Signature": multi }));
    add(base("stale", body, { "Stripe-Signature": header(body, now - 600) }, { expect: "stale_timestamp" }));
    add(base("future", body, { "Stripe-Signature": header(body, now + 600) }, { expect: "stale_timestamp" }));
    add(base("no_v1", body, { "Stripe-Signature": `t=${now},v0=${good}` }, { expect: "malformed_signature" }));
}

// --- Standard Webhooks and Svix (Webhook.sign) ---
for (const [scheme, Webhook, prefix, sdk] of [
    ["standard", StandardWebhook, "webhook-", "standardwebhooks Webhook.sign"],
    ["svix", SvixWebhook, "svix-", "svix Webhook.sign"],
]) {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const wrong = "whsec_" + b64(Buffer.alloc(24, 7));
    const wh = new Webhook(secret);
    const sign = (id, ts, body, w = wh) => w.sign(id, new Date(ts * 1000), body);
    const base = (label, body, id, ts, sig, extra = {}) => ({
        name: `${scheme}/${label}`,
        sdk,
        scheme,
        secret,
        wrong_secret: wrong,
        headers: {
            "Content-Type": "application/json",
            [prefix + "id"]: id,
            [prefix + "timestamp"]: String(ts),
            [prefix + "signature"]: sig,
        },
        body_b64: b64(utf8(body)),
        ...extra,
    });
    for (const [label, body] of Object.entries(bodies)) {
        const id = "msg_" + randomUUID().replaceAll("-", "");
        const sig = sign(id, now, body);
        const item = base(label, body, id, now, sig);
        // Svix's verify insists on a JSON body; its inner Standard Webhooks verifier does not.
        new StandardWebhook(secret).verify(
            body,
            { "webhook-id": id, "webhook-timestamp": String(now), "webhook-signature": sig },
            { jsonParse: false },
        );
        add(item);
        if (label === "json") negatives(item, prefix + "signature", "v1,not*base64");
    }
    const body = bodies.json;
    const id = "msg_" + randomUUID().replaceAll("-", "");
    const good = sign(id, now, body);
    const other = sign(id, now, body, new Webhook(wrong));
    const multi = `v1a,${other.slice(3)} ${other} ${good}`;
    add(base("multi", body, id, now, multi));
    // The prefix is optional: the same key as bare base64.
    add({ ...base("bare_secret", body, id, now, good), secret: secret.slice(6) });
    add(base("stale", body, id, now - 600, sign(id, now - 600, body), { expect: "stale_timestamp" }));
    add(base("future", body, id, now + 600, sign(id, now + 600, body), { expect: "stale_timestamp" }));
    add(base("only_v1a", body, id, now, "v1a," + good.slice(3), { expect: "malformed_signature" }));
}

// --- Twilio (getExpectedTwilioSignature, checked with validateRequest[WithBody]) ---
{
    const token = "12345678901234567890123456789012";
    const wrong = "00000000000000000000000000000000";
    const base = (label, url, body, sig, contentType, extra = {}) => ({
        name: "twilio/" + label,
        sdk: "twilio getExpectedTwilioSignature",
        scheme: "twilio",
        secret: token,
        wrong_secret: wrong,
        headers: {
            "Content-Type": contentType,
            "I-Twilio-Idempotency-Token": randomUUID(),
            "X-Twilio-Signature": sig,
        },
        body_b64: b64(body),
        url,
        ...extra,
    });
    // A form post: repeated keys, spaces, '+', non-ASCII and reserved characters all need the
    // decoding and ordering the SDK applies.
    const form = new URLSearchParams([
        ["To", "+15005550006"],
        ["From", "+14158675310"],
        ["Body", "Hello, world & caf\u00e9 = 100% \u2713"],
        ["MediaUrl", "https://example.com/b.png"],
        ["MediaUrl", "https://example.com/a.png"],
        ["AccountSid", "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"],
        ["Empty", ""],
    ]);
    const params = {};
    for (const [k, v] of form) {
        params[k] = k in params ? [].concat(params[k], v) : v;
    }
    const formBody = utf8(form.toString());
    const formCt = "application/x-www-form-urlencoded";
    for (const url of ["https://example.com/hooks/twilio?x=1", "http://127.0.0.1:8080/hooks/twilio"]) {
        const sig = twilio.getExpectedTwilioSignature(token, url, params);
        check(twilio.validateRequest(token, sig, url, params), "twilio form " + url);
        const item = base("form" + (url.includes("8080") ? "_port" : ""), url, formBody, sig, formCt);
        add(item);
        if (!url.includes("8080")) negatives(item, "X-Twilio-Signature", "@@notbase64@@");
    }
    // Twilio may sign the URL with the default port spelled out; the SDK accepts either spelling.
    {
        const url = "https://example.com/hooks/twilio?x=1";
        const sig = twilio.getExpectedTwilioSignature(token, "https://example.com:443/hooks/twilio?x=1", params);
        check(twilio.validateRequest(token, sig, url, params), "twilio default port");
        add(base("form_default_port", url, formBody, sig, formCt));
    }
    // JSON: the body's hash rides in the URL and only the URL is signed.
    for (const [label, body] of [["json", utf8(bodies.json)], ["not_utf8", notUtf8]]) {
        const url = `https://example.com/hooks/twilio?bodySHA256=${twilio.getExpectedBodyHash(body)}`;
        const sig = twilio.getExpectedTwilioSignature(token, url, null);
        check(twilio.validateRequestWithBody(token, sig, url, body), "twilio body " + label);
        const item = base(label, url, body, sig, "application/json");
        add(item);
        if (label === "json") {
            add({ ...item, name: item.name + "/tampered_body", body_b64: b64(utf8(bodies.nul)),
                  expect: "bad_signature" });
        }
    }
}

finish();
writeFileSync(out, JSON.stringify(items, null, 1) + "\n");
console.log(`wrote ${items.length} SDK-signed requests to ${out}`);
