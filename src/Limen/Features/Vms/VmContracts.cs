using Limen.Data;

namespace Limen.Features.Vms;

/// <param name="AntiAffinityGroup">Two VMs of one owner in the same group never share a host.</param>
public sealed record CreateVmRequest(string Name, int Vcpus, int MemoryMb, int DiskGb, Guid ImageId, bool Start = false, string? AntiAffinityGroup = null);

public sealed record UpdateVmRequest(string? Name = null, int? Vcpus = null, int? MemoryMb = null);

public sealed record AttachCdromRequest(Guid ImageId);

public sealed record BootOrderRequest(IReadOnlyList<string> Devices);

/// <param name="Placement">Only in an admin's GET /api/vms/{id}: the reason names hosts, which users never see (docs/api.md).</param>
public sealed record VmResponse(
    Guid Id, string Name, string State, string? StateReason, int Vcpus, int MemoryMb, int DiskGb, Guid? ImageId, Guid? CdromImageId,
    IReadOnlyList<string> BootOrder, string MacAddress, Guid OwnerId, Guid HostId, string? AntiAffinityGroup, DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt, VmPlacementView? Placement = null)
{
    public static VmResponse From(Vm vm) => new(
        vm.Id, vm.Name, vm.State, vm.StateReason, vm.Vcpus, vm.MemoryMb, vm.DiskGb, vm.ImageId, vm.CdromImageId,
        vm.BootOrder.Split(','), vm.MacAddress, vm.OwnerId, vm.HostId, vm.AntiAffinityGroup, vm.CreatedAt, vm.UpdatedAt);

    /// <summary>The detail an admin gets: with how the VM's host was chosen.</summary>
    public static VmResponse Detail(Vm vm) => From(vm) with { Placement = new VmPlacementView(vm.PlacementReason) };
}

/// <param name="Reason">"spread: host2 had 3.1 GiB free of 4 GiB, host3 1.2 GiB"; null for a VM created before placement said why.</param>
public sealed record VmPlacementView(string? Reason);

public sealed record VmStatsResponse(
    string State, double CpuUsagePercent, int Vcpus, long MemoryUsedBytes, long MemoryTotalBytes,
    long DiskReadBytes, long DiskWriteBytes, long NetworkRxBytes, long NetworkTxBytes, DateTimeOffset SampledAt);
