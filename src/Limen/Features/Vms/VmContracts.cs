using Limen.Data;

namespace Limen.Features.Vms;

public sealed record CreateVmRequest(string Name, int Vcpus, int MemoryMb, int DiskGb, Guid ImageId, bool Start = false);

public sealed record UpdateVmRequest(string? Name = null, int? Vcpus = null, int? MemoryMb = null);

public sealed record AttachCdromRequest(Guid ImageId);

public sealed record BootOrderRequest(IReadOnlyList<string> Devices);

public sealed record VmResponse(
    Guid Id, string Name, string State, string? StateReason, int Vcpus, int MemoryMb, int DiskGb, Guid? ImageId, Guid? CdromImageId,
    IReadOnlyList<string> BootOrder, string MacAddress, Guid OwnerId, Guid HostId, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public static VmResponse From(Vm vm) => new(
        vm.Id, vm.Name, vm.State, vm.StateReason, vm.Vcpus, vm.MemoryMb, vm.DiskGb, vm.ImageId, vm.CdromImageId,
        vm.BootOrder.Split(','), vm.MacAddress, vm.OwnerId, vm.HostId, vm.CreatedAt, vm.UpdatedAt);
}

public sealed record VmStatsResponse(
    string State, double CpuUsagePercent, int Vcpus, long MemoryUsedBytes, long MemoryTotalBytes,
    long DiskReadBytes, long DiskWriteBytes, long NetworkRxBytes, long NetworkTxBytes, DateTimeOffset SampledAt);
