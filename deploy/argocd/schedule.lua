-- Argo CD health of an autoflow.dev Schedule (resource.customizations.health.autoflow.dev_Schedule).
-- Suspended: spec.suspend is true (no fires until it is false). Healthy: the operator
-- accepted the current generation (Ready True: cron, timezone and workflow are good).
-- Degraded: it cannot fire (Ready False). Progressing: not reconciled yet, or an older generation.
local hs = { status = "Progressing", message = "Waiting for the operator to schedule it" }
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "The schedule is suspended"
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
      hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
    elseif condition.status == "True" then
      hs.status = "Healthy"
      if obj.status.nextScheduleTime ~= nil then
        hs.message = "Next fire at " .. obj.status.nextScheduleTime
      else
        hs.message = "Scheduled"
      end
    elseif condition.status == "False" then
      hs.status = "Degraded"
      hs.message = (condition.reason or "NotReady") .. ": " .. (condition.message or "")
    end
    return hs
  end
end
return hs
