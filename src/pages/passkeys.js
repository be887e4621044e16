// The gateway's passkey buttons: WebAuthn ceremonies against /auth/passkeys/*, and the TOTP
// enrolment of the second-factor page. Served from the gateway itself (no external assets);
// every button names its ceremony in data-passkey.
"use strict";

const b64u = {
  decode: (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)),
  encode: (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
};

function say(text) {
  const status = document.getElementById("passkey-status");
  if (status) status.textContent = text;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.message || answer.error || `HTTP ${response.status}`);
  return answer;
}

function ids(list) {
  return (list || []).map((c) => ({ ...c, id: b64u.decode(c.id) }));
}

async function useOne(startBody) {
  const { publicKey, state } = await post("/auth/passkeys/login/start", startBody);
  publicKey.challenge = b64u.decode(publicKey.challenge);
  publicKey.allowCredentials = ids(publicKey.allowCredentials);
  const credential = await navigator.credentials.get({ publicKey });
  const r = credential.response;
  return post("/auth/passkeys/login/finish", {
    state,
    credential: {
      id: credential.id,
      type: credential.type,
      response: {
        clientDataJSON: b64u.encode(r.clientDataJSON),
        authenticatorData: b64u.encode(r.authenticatorData),
        signature: b64u.encode(r.signature),
        userHandle: r.userHandle ? b64u.encode(r.userHandle) : null,
      },
    },
  });
}

async function register(name) {
  const { publicKey, state } = await post("/auth/passkeys/register/start", {});
  publicKey.challenge = b64u.decode(publicKey.challenge);
  publicKey.user.id = b64u.decode(publicKey.user.id);
  publicKey.excludeCredentials = ids(publicKey.excludeCredentials);
  const credential = await navigator.credentials.create({ publicKey });
  return post("/auth/passkeys/register/finish", {
    state,
    name,
    credential: {
      id: credential.id,
      type: credential.type,
      response: {
        clientDataJSON: b64u.encode(credential.response.clientDataJSON),
        attestationObject: b64u.encode(credential.response.attestationObject),
      },
    },
  });
}

const ceremonies = {
  login: () => useOne({ mode: "cookie" }),
  "second-factor": (button) => useOne({ mfa_token: button.dataset.mfaToken }),
  "step-up": () => useOne({ step_up: true }),
  register: () => register(document.getElementById("passkey-name")?.value || "Passkey"),
};

document.querySelectorAll("[data-passkey]").forEach((button) => {
  button.addEventListener("click", async () => {
    button.disabled = true;
    say("Waiting for your passkey…");
    try {
      await ceremonies[button.dataset.passkey](button);
      say("Done.");
      const next = button.dataset.returnTo;
      if (next) window.location.assign(next); else window.location.reload();
    } catch (error) {
      say(`That did not work: ${error.message}`);
      button.disabled = false;
    }
  });
});

// The second-factor page: set up TOTP (the secret, then a code), delete a passkey.
const totpSteps = {
  enroll: async () => {
    const enrolment = await post("/auth/mfa/totp/enroll", {});
    document.getElementById("totp-secret").textContent = enrolment.secret;
    document.getElementById("totp-uri").href = enrolment.otpauth_uri;
    document.getElementById("totp-setup").hidden = false;
    document.getElementById("totp-code").focus();
  },
  confirm: async () => {
    const code = document.getElementById("totp-code").value.trim();
    const confirmed = await post("/auth/mfa/totp/confirm", { code });
    document.getElementById("totp-codes").textContent = confirmed.recovery_codes.join("\n");
    document.getElementById("totp-setup").hidden = true;
    document.getElementById("totp-recovery").hidden = false;
  },
};

document.querySelectorAll("[data-totp]").forEach((button) => {
  button.addEventListener("click", () => {
    totpSteps[button.dataset.totp]().then(() => say(""), (error) => say(`That did not work: ${error.message}`));
  });
});

document.querySelectorAll("[data-delete-passkey]").forEach((button) => {
  button.addEventListener("click", async () => {
    const id = encodeURIComponent(button.dataset.deletePasskey);
    const response = await fetch(`/auth/passkeys/${id}`, { method: "DELETE" });
    if (response.ok) window.location.reload(); else say(`Could not delete it (HTTP ${response.status}).`);
  });
});
