namespace Limen.Features.Outcomes;

/// <summary>
/// Why a domain operation did not happen, in the domain's terms. Services return these; only
/// <c>Web/</c> (<see cref="Web.FailureProblems"/>) knows which HTTP answer each one is, so the web
/// UI, the CLI and the JSON API can call the same services. An operation that fails this way has
/// changed nothing (or undone what it did).
/// </summary>
public abstract record Failure;

/// <summary><paramref name="What"/> does not exist, or the caller may not see it ("The VM").</summary>
public sealed record NotFound(string What) : Failure;

/// <summary>The request's <paramref name="Field"/> (its API name) is not acceptable.</summary>
public sealed record Invalid(string Field, string Detail) : Failure;

/// <summary>The object is in <paramref name="State"/>, from which this operation is not possible.</summary>
public sealed record InvalidState(string Detail, string State) : Failure;

/// <summary>Granting the request would take <paramref name="Scope"/>'s usage of <paramref name="Resource"/> past its limit.</summary>
public sealed record QuotaDenied(string Scope, string Resource, int Requested, int Used, int Limit) : Failure;

/// <summary>Another object already holds what the request asks for (a name); <paramref name="Field"/> is the request field that asked for it, when one did.</summary>
public sealed record Conflict(string Detail, string? Field = null) : Failure;

/// <summary>The hypervisor refused or did not finish the operation; the object is left as <paramref name="State"/> says (when known).</summary>
public sealed record OperationFailed(string Title, string Detail, string? State = null) : Failure;

/// <summary>Creating the object failed and everything it had made was removed again.</summary>
public sealed record RolledBack(string Title, string Detail) : Failure;

/// <summary>The host's disk folder is full; <paramref name="What"/> could not be written and nothing was kept.</summary>
public sealed record InsufficientStorage(string What) : Failure;

/// <summary>No host has room for what was asked (placement; 409: room may come as VMs go); <paramref name="Detail"/> says what.</summary>
public sealed record InsufficientCapacity(string Detail) : Failure;

/// <summary>Self-registration is switched off (the admin setting <c>registration_open</c>).</summary>
public sealed record RegistrationClosed : Failure;

/// <summary>The client made too many attempts; it may try again after <paramref name="RetryAfter"/>.</summary>
public sealed record Throttled(TimeSpan RetryAfter) : Failure;

/// <summary>The value of an operation that succeeded, or the <see cref="Outcomes.Failure"/> that stopped it.</summary>
public sealed class Outcome<T>
{
    private readonly T? value;

    private Outcome(T? value, Failure? failure)
    {
        this.value = value;
        Failure = failure;
    }

    /// <summary>Null when the operation succeeded.</summary>
    public Failure? Failure { get; }

    public T Value => Failure is null ? value! : throw new InvalidOperationException($"The operation failed: {Failure}");

    public static implicit operator Outcome<T>(T value) => new(value, null);

    public static implicit operator Outcome<T>(Failure failure) => new(default, failure);
}
