using System.Runtime.InteropServices;

namespace Limen.Features.Backup;

/// <summary>
/// Turns Ctrl+C and SIGTERM (systemd stopping the unit) into cancellation, so backup, restore and
/// drill still run their cleanup: no temporary archive, scratch database or half-open transaction
/// is left behind.
/// </summary>
public sealed class SignalCancellation : IDisposable
{
    private readonly CancellationTokenSource source;
    private readonly PosixSignalRegistration[] registrations;

    public SignalCancellation(CancellationToken outer)
    {
        source = CancellationTokenSource.CreateLinkedTokenSource(outer);
        registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel),
        ];
    }

    public CancellationToken Token => source.Token;

    private void Cancel(PosixSignalContext context)
    {
        context.Cancel = true;
        source.Cancel();
    }

    public void Dispose()
    {
        foreach (var registration in registrations)
        {
            registration.Dispose();
        }

        source.Dispose();
    }
}
