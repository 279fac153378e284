/*
 * common/egress.h — what a pod's network looks like from inside, shared by the appliance (which
 * writes the pod's environment) and the runner (which creates the listeners).
 *
 * Egress policies (CreatePod.network, Pod.network):
 *   none    the pod's own network namespace with only lo; nothing listens for it.
 *   models  lo + the model gateway: the runner listens on AM_EGRESS_GATEWAY_ADDR inside the pod's
 *           netns (the socket is created in the pod's netns during sandbox setup and handed to
 *           the runner) and forwards each HTTP request over its mTLS stream (GatewayRequest) to
 *           airmeshd, which checks the pod's virtual key and policy and calls the model endpoint.
 *           The default for a new pod when its org has a model endpoint.
 *   allow   models + an HTTP CONNECT proxy on AM_EGRESS_PROXY_ADDR that reaches only the org's
 *           allowed on-prem host:ports (CreatePod.egress_allow); each decision is an EgressEvent.
 *   host    the runner host's network namespace (admins and owners only; audited).
 * No veth, no routes: with none/models/allow nothing but those listeners is reachable.
 *
 * The environment airmeshd gives a pod with models/allow (AM_EGRESS_ENV_*): the virtual key is
 * "amk_" + 64 hex, per pod, only its SHA-256 is stored (Pod.gateway_key_sha256); it stops
 * working when the pod ends.
 */
#ifndef AM_COMMON_EGRESS_H
#define AM_COMMON_EGRESS_H

#define AM_EGRESS_GATEWAY_HOST "127.0.0.1"
#define AM_EGRESS_GATEWAY_PORT 4000
#define AM_EGRESS_GATEWAY_URL "http://127.0.0.1:4000"
#define AM_EGRESS_PROXY_PORT 3128
#define AM_EGRESS_PROXY_URL "http://127.0.0.1:3128"

#define AM_EGRESS_KEY_PREFIX "amk_"
#define AM_EGRESS_KEY_LEN (4 + 64)

/* Environment of a pod with network models or allow:
 *   OPENAI_BASE_URL=http://127.0.0.1:4000/v1      OPENAI_API_KEY=<virtual key>
 *   OPENAI_API_BASE=http://127.0.0.1:4000/v1      (aider / litellm spelling)
 *   ANTHROPIC_BASE_URL=http://127.0.0.1:4000      ANTHROPIC_API_KEY=<virtual key>
 *   AIRMESH_GATEWAY_URL=http://127.0.0.1:4000     AIRMESH_MODEL_KEY=<virtual key>
 * and with allow also HTTPS_PROXY / HTTP_PROXY / https_proxy / http_proxy = AM_EGRESS_PROXY_URL,
 * NO_PROXY / no_proxy = 127.0.0.1,localhost. */

/* Largest request body the runner forwards to the gateway (413 above). */
#define AM_EGRESS_MAX_BODY (32u << 20)
/* Body bytes per GatewayRequest / GatewayResponse message. */
#define AM_EGRESS_CHUNK (256u << 10)

#endif
