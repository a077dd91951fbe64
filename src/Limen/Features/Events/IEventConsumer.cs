using Limen.Data;

namespace Limen.Features.Events;

/// <summary>
/// Something in this server that acts on committed events (a console relay ending its session when
/// the VM stops, whichever server stopped it). Every server calls its consumers for every committed
/// event whose type is in <see cref="Types"/>, in id order, from the stream it reads through
/// PostgreSQL — so a consumer reacts the same to its own server's acts and to another's.
/// A consumer that throws is logged and does not stop the others.
/// </summary>
public interface IEventConsumer
{
    IReadOnlyCollection<string> Types { get; }

    Task ConsumeAsync(LimenEvent committed, CancellationToken cancellationToken);
}
