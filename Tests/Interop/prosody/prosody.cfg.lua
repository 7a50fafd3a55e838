-- Prosody for Stox's interop tests: one loopback-only instance serving a.test, started by the
-- Swift tests (Tests/XMPPFederationTests/ProsodyInteropTests.swift), which set:
--   STOX_PROSODY_RUN   run directory (pid, data, log)
--   STOX_PROSODY_MODE  dialback: TLS required, self-signed certificates, dialback authenticates
--                      secure:   TLS required, certificates from the test CA, s2s_secure_auth
--   STOX_PROSODY_CERT, STOX_PROSODY_KEY  a.test's certificate and key (PEM)
--   STOX_CA            the test CA (secure mode)
--   STOX_GATEWAY_PORT  where the gateway under test listens for s2s (sip.test)
--   STOX_GATEWAY_DOMAINS  the domains routed there (default sip.test)
--   STOX_C2S_PORT, STOX_S2S_PORT, STOX_COMPONENT_PORT  Prosody's own ports
--   STOX_COMPONENT_SECRET  the secret of the XEP-0114 component gw.a.test
--   STOX_PROSODY_DNS   a port on 127.0.0.1: find peers through the DNS server there (SRV), as
--                      production does, instead of the static route to the gateway. libunbound
--                      answers *.test itself (NXDOMAIN), so a gateway found this way must serve
--                      a name under another test zone (sip.internal).
-- Prosody 0.12 exposes each environment variable X to this file as ENV_X.
local RUN = ENV_STOX_PROSODY_RUN or error("STOX_PROSODY_RUN is not set")
local MODE = ENV_STOX_PROSODY_MODE or "dialback"
local DNS = ENV_STOX_PROSODY_DNS

run_as_root = true
pidfile = RUN .. "/prosody.pid"
data_path = RUN .. "/data"
log = { { levels = { min = "debug" }, to = "file", filename = RUN .. "/prosody.log" } }

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { tonumber(ENV_STOX_C2S_PORT or "15222") }
s2s_ports = { tonumber(ENV_STOX_S2S_PORT or "15269") }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
component_ports = { tonumber(ENV_STOX_COMPONENT_PORT or "15347") }
component_interface = "127.0.0.1"
http_ports = { }
https_ports = { }
use_ipv6 = false

plugin_paths = { ENV_STOX_PLUGINS or error("STOX_PLUGINS is not set") }
-- A local list: options set in this file cannot be read back as Lua variables.
local modules = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "smacks" }
if DNS then
	unbound = { resolvconf = false; hoststxt = false; forward = "127.0.0.1@" .. DNS }
else
	modules[#modules + 1] = "stox_routes"
end
modules_enabled = modules
-- XEP-0198 on s2s: what the gateway has not acknowledged (stored) is sent again on a new link
-- rather than bounced (Prosody 0.12's default bounces it).
smacks_enabled_s2s = true
smacks_s2s_resend = true
modules_disabled = { "offline" }
authentication = "internal_plain"
storage = "internal"

-- The scripted client logs in without TLS; s2s is what is under test.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

s2s_require_encryption = true
if MODE == "secure" then
	s2s_secure_auth = true
else
	s2s_secure_auth = false
	s2s_insecure_domains = { "sip.test", "sip.internal" }
end

-- Every domain the gateway answers for (STOX_GATEWAY_DOMAINS, comma-separated; sip.test by
-- default) is routed to its s2s listener.
local gateway_routes = { }
for domain in (ENV_STOX_GATEWAY_DOMAINS or "sip.test"):gmatch("[^,]+") do
	gateway_routes[domain] = "127.0.0.1:" .. (ENV_STOX_GATEWAY_PORT or error("STOX_GATEWAY_PORT is not set"))
end
stox_routes = gateway_routes

ssl = {
	certificate = ENV_STOX_PROSODY_CERT;
	key = ENV_STOX_PROSODY_KEY;
	cafile = ENV_STOX_CA;
}

VirtualHost "a.test"

-- The gateway attached as an external component (XEP-0114) instead of over s2s.
Component "gw.a.test"
	component_secret = ENV_STOX_COMPONENT_SECRET or "component-secret-for-tests"
