-- Argo CD health of an autoflow.dev Workflow (resource.customizations.health.autoflow.dev_Workflow).
-- Healthy: the operator validated the current generation (Ready True). Degraded: it found
-- problems in the current generation (Ready False; the message names step and field).
-- Progressing: not validated yet, or validated for an older generation.
local hs = { status = "Progressing", message = "Waiting for the operator to validate the workflow" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    local observed = condition.observedGeneration or obj.status.observedGeneration
    if generation ~= nil and (observed == nil or observed < generation) then
      hs.message = "Waiting for the operator to validate generation " .. tostring(generation)
    elseif condition.status == "True" then
      hs.status = "Healthy"
      hs.message = "Valid"
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = (condition.reason or "Invalid") .. ": " .. (condition.message or "")
    end
    return hs
  end
end
return hs
