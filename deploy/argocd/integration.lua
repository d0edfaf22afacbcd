-- Argo CD health of an autoflow.dev Integration (resource.customizations.health.autoflow.dev_Integration).
-- Healthy: the last health check of the current generation passed (Ready True), or health
-- checks are turned off (spec.healthCheck.enabled false). Degraded: it failed (Ready False).
-- Progressing: not checked yet, or checked for an older generation.
local hs = { status = "Progressing", message = "Waiting for the first health check" }
local check = (obj.spec or {}).healthCheck
if check ~= nil and check.enabled == false then
  hs.status = "Healthy"
  hs.message = "Health checks are disabled"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    local observed = condition.observedGeneration or obj.status.observedGeneration
    if generation ~= nil and (observed == nil or observed < generation) then
      hs.message = "Waiting for a health check of generation " .. tostring(generation)
    elseif condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message or "Ready"
      if hs.message == "" then
        hs.message = "Ready"
      end
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = (condition.reason or "NotReady") .. ": " .. (condition.message or "")
    end
    return hs
  end
end
return hs
