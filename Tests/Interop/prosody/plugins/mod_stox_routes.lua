-- Routes outgoing s2s connections for chosen domains to a fixed address, without DNS, so the
-- test Prosody reaches the gateway on loopback. Configure with
--   stox_routes = { ["sip.test"] = "127.0.0.1:25270" }
-- It replaces the service resolver mod_s2s asks for each new outgoing connection.
module:set_global();

local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";

local routes = module:get_option("stox_routes", {});
local default_new = service.new;

local function address(target)
	local host, port = target:match("^([^:]+):(%d+)$");
	return host or target, tonumber(port) or 5269;
end

local nothing = { next = function(_, callback) callback(nil); end };

service.new = function(hostname, srv, conn_type, extra)
	local target = routes[hostname];
	if not target then return default_new(hostname, srv, conn_type, extra); end
	-- No direct TLS (XEP-0368) for routed domains: STARTTLS on the given port.
	if srv == "xmpps-server" then return nothing; end
	local host, port = address(target);
	return basic.new(host, port, conn_type, extra);
end

function module.unload()
	service.new = default_new;
end
